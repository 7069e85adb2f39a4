module github.com/mote-run/mote/sdk/go

go 1.24
