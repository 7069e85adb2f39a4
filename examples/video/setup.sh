#!/bin/sh
# setup.sh installs what examples/video needs on Debian: ffmpeg (with
# libx264) and ffprobe, at /usr/bin where process functions' sandbox sees
# them. It does nothing when they are already there.
set -e
if [ -x /usr/bin/ffmpeg ] && [ -x /usr/bin/ffprobe ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup.sh: ffmpeg is missing; run as root to install it: apt-get install -y ffmpeg" >&2
	exit 1
fi
apt-get update -qq
apt-get install -y -qq ffmpeg
