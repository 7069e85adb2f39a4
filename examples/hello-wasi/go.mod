module github.com/mote-run/mote/examples/hello-wasi

go 1.24
