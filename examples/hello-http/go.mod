module github.com/mote-run/mote/examples/hello-http

go 1.24

require github.com/mote-run/mote/sdk/go v0.0.0

replace github.com/mote-run/mote/sdk/go => ../../sdk/go
