// Command gosdk is a process function written with Mote's Go SDK, used by
// the process runtime's tests: it echoes, logs, makes a host call or
// fails, sleeps or exits, as its event asks.
package main

import (
	"errors"
	"os"
	"strconv"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

func main() { mote.Start() }

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	switch string(event) {
	case "call":
		mote.Log("calling kv.get for %s", ctx.InvocationID)
		v, err := mote.Call("kv.get", []byte("k1"), []byte("v1"))
		if err != nil {
			return nil, err
		}
		return v, nil
	case "missing":
		_, err := mote.Call("kv.missing")
		var e *mote.Error
		if errors.As(err, &e) {
			return []byte(e.Code + "|" + e.Message), nil
		}
		return nil, errors.New("want a *mote.Error")
	case "context":
		return []byte(ctx.InvocationID + "|" + ctx.RootID + "|" + ctx.ParentID + "|" + strconv.Itoa(ctx.Depth) + "|" + ctx.Function), nil
	case "fail":
		return nil, errors.New("refused")
	case "panic":
		panic("oh no")
	case "sleep":
		time.Sleep(time.Minute)
	case "exit":
		os.Exit(3)
	case "big": // one byte over the platform's response limit
		n, _ := strconv.Atoi(os.Getenv("MOTE_MAX_RESPONSE"))
		return make([]byte, n+1), nil
	}
	return event, nil
}
