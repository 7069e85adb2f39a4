"""video: ExCamera-style parallel video encoding as Mote process functions.

Two handlers over the same directory (see README.md):

- ``video.job``: reads the input video from an object, splits it at its
  keyframes into chunks of about ``chunk_seconds`` (stream copy, no
  re-encoding), stores each chunk as an object, encodes them in parallel
  with ``mote.map`` over ``video-encode``, joins the encoded chunks
  (ffmpeg's concat demuxer, stream copy) and stores the result.
- ``video.encode``: encodes one chunk object with Debian's ffmpeg (libx264)
  and stores the encoded chunk as an object.

A host call moves at most 8 MiB of an object (docs/storage.md), so
objects are read in ranges,
and a function writes anything larger as numbered parts (``KEY.part000``, ``KEY.part001``, ...) whose bytes, concatenated in
order, are the file. The answers name the keys.
"""

import json
import os
import shutil
import subprocess
import time

import mote

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"

# PART is the most one host call moves here: an object host call carries
# at most 8 MiB (MaxHostObjectBytes); leave room for the other arguments.
PART = (8 << 20) - (64 << 10)


def _read(bucket, keys, path):
    """Writes the concatenation of the objects keys to path; returns its size."""
    n = 0
    with open(path, "wb") as f:
        for key in keys:
            size = mote.objects.head(bucket, key).size
            off = 0
            while off < size:
                b = mote.objects.get(bucket, key, offset=off, length=min(PART, size - off))
                if not b:
                    raise IOError(f"object {bucket}/{key} ended at {off} of {size} bytes")
                f.write(b)
                off += len(b)
            n += size
    return n


def _write(bucket, key, path, content_type="video/mp4"):
    """Stores the file at path as key, or as key.partNNN when it is larger
    than one host call moves; returns the keys written, in order."""
    size = os.path.getsize(path)
    if size <= PART:
        with open(path, "rb") as f:
            mote.objects.put(bucket, key, f.read(), content_type)
        return [key]
    keys = []
    with open(path, "rb") as f:
        while True:
            b = f.read(PART)
            if not b:
                break
            k = f"{key}.part{len(keys):03d}"
            mote.objects.put(bucket, k, b, "application/octet-stream")
            keys.append(k)
    return keys


def _run(args):
    """Runs a command; a failure raises with the tail of its output."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        tail = p.stdout.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{os.path.basename(args[0])} exited {p.returncode}: {tail}")
    return p.stdout


def _frames(path):
    """Counts the video frames of a file from its packets (no decoding)."""
    out = _run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_packets",
                "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path])
    return int(out.decode().strip().split(",")[0])


def _settings(event):
    s = {
        "crf": int(event.get("crf", 23)),
        "preset": str(event.get("preset", "veryfast")),
        "threads": int(event.get("threads", 1)),
    }
    if not 0 <= s["crf"] <= 51:
        raise ValueError("crf must be in 0..51")
    if s["preset"] not in ("ultrafast", "superfast", "veryfast", "faster", "fast",
                           "medium", "slow", "slower", "veryslow"):
        raise ValueError(f"unknown x264 preset {s['preset']!r}")
    if not 1 <= s["threads"] <= 16:
        raise ValueError("threads must be in 1..16")
    return s


def _work(name):
    d = os.path.join(os.environ.get("TMPDIR", "/tmp"), name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def encode(event, context):
    """Encodes one chunk: event {bucket, input: [keys], output, crf, preset,
    threads}; answers {output: [keys], bytes, frames, seconds}."""
    bucket, out_key = event["bucket"], event["output"]
    s = _settings(event)
    d = _work("encode-" + context.aws_request_id)
    try:
        src, dst = os.path.join(d, "in.mkv"), os.path.join(d, "out.mp4")
        _read(bucket, event["input"], src)
        t0 = time.monotonic()
        _run([FFMPEG, "-nostdin", "-v", "error", "-threads", str(s["threads"]), "-i", src,
              "-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", s["preset"],
              "-crf", str(s["crf"]), "-threads", str(s["threads"]), "-y", dst])
        took = time.monotonic() - t0
        keys = _write(bucket, out_key, dst)
        return {"output": keys, "bytes": os.path.getsize(dst), "frames": _frames(dst),
                "seconds": round(took, 3)}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def job(event, context):
    """Splits, encodes in parallel and joins: event {bucket, input, output,
    chunk_seconds, crf, preset, threads, concurrency, encoder}; answers
    with the output's keys, the chunk count and where the time went."""
    bucket, in_key, out_key = event["bucket"], event["input"], event["output"]
    chunk = float(event.get("chunk_seconds", 2))
    if not 0.1 <= chunk <= 3600:
        raise ValueError("chunk_seconds must be in 0.1..3600")
    s = _settings(event)
    conc = int(event.get("concurrency", 0)) or (os.cpu_count() or 1)
    encoder = event.get("encoder", "video-encode")
    prefix = f"{out_key}.work/{context.aws_request_id}"
    d = _work("job-" + context.aws_request_id)
    times = {}
    try:
        t = time.monotonic()
        src = os.path.join(d, "input")
        _read(bucket, [in_key], src)
        times["read_s"] = time.monotonic() - t

        # Split at keyframes with stream copy: each chunk starts with a
        # keyframe, so it decodes on its own.
        t = time.monotonic()
        parts = os.path.join(d, "chunks")
        os.makedirs(parts)
        _run([FFMPEG, "-nostdin", "-v", "error", "-i", src, "-map", "0:v:0", "-an", "-c", "copy",
              "-f", "segment", "-segment_time", str(chunk), "-reset_timestamps", "1",
              os.path.join(parts, "%05d.mkv")])
        os.remove(src)
        names = sorted(os.listdir(parts))
        if not names:
            raise ValueError(f"{in_key} has no video frames")
        events = []
        for i, name in enumerate(names):
            keys = _write(bucket, f"{prefix}/chunk/{i:05d}.mkv", os.path.join(parts, name), "video/x-matroska")
            os.remove(os.path.join(parts, name))
            events.append(dict(s, bucket=bucket, input=keys, output=f"{prefix}/enc/{i:05d}.mp4"))
        times["split_s"] = time.monotonic() - t

        t = time.monotonic()
        results = mote.map(encoder, events, concurrency=conc)
        times["encode_s"] = time.monotonic() - t
        failed = [(i, r.error) for i, r in enumerate(results) if not r.ok]
        if failed:
            i, e = failed[0]
            raise RuntimeError(f"{len(failed)} of {len(events)} chunks failed; chunk {i}: {e.code}: {e.message}")
        done = [json.loads(r.output) for r in results]

        # Join with the concat demuxer: stream copy, timestamps made
        # continuous across the chunks.
        t = time.monotonic()
        lst = os.path.join(d, "list.txt")
        with open(lst, "w") as f:
            for i, r in enumerate(done):
                p = os.path.join(d, f"enc{i:05d}.mp4")
                _read(bucket, r["output"], p)
                f.write(f"file '{p}'\n")
        out = os.path.join(d, "out.mp4")
        _run([FFMPEG, "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", lst,
              "-c", "copy", "-movflags", "+faststart", "-y", out])
        keys = _write(bucket, out_key, out)
        times["join_s"] = time.monotonic() - t
        if not event.get("keep_chunks"):
            for e, r in zip(events, done):
                for k in e["input"] + r["output"]:
                    mote.objects.delete(bucket, k)
        return {
            "output": keys,
            "bytes": os.path.getsize(out),
            "chunks": len(events),
            "frames": _frames(out),
            "chunk_frames": [r["frames"] for r in done],
            "encode_seconds": [r["seconds"] for r in done],
            "times": {k: round(v, 3) for k, v in times.items()},
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)
