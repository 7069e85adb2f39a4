module triggerguest

go 1.26

require github.com/mote-run/mote/sdk/go v0.0.0

replace github.com/mote-run/mote/sdk/go => ../../../../sdk/go
