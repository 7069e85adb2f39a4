package main

import (
	"os"
	"os/signal"
	"syscall"
)

// waitSignal returns a channel that receives SIGINT or SIGTERM.
func waitSignal() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch
}
