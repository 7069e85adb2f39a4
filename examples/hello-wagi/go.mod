module github.com/mote-run/mote/examples/hello-wagi

go 1.24
