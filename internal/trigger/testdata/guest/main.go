// Command triggerguest is the trigger tests' function: a Go SDK reactor
// that records in KV bucket "t" each event a trigger gives it, so a test
// can count what was delivered, and how often.
package main

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

func main() { mote.Start() }

type event struct {
	ID         string `json:"id"`
	DetailType string `json:"detail-type"`
	Detail     struct {
		SleepMs int  `json:"sleep_ms"`
		Fail    bool `json:"fail"`
	} `json:"detail"`
	Records []struct {
		MessageID string `json:"messageId"`
		Body      string `json:"body"`
		Source    string `json:"eventSource"`
		// Change events (eventSource mote:kv or mote:obj).
		Op  string `json:"op"`
		Key string `json:"key"`
		Seq uint64 `json:"sequence"`
	} `json:"Records"`
}

func handle(ctx *mote.Context, raw []byte) ([]byte, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	kv := mote.KV("t")
	if ev.DetailType == "Scheduled Event" {
		// start/ID before the work, end/ID after: a run cut short leaves a
		// start without an end.
		if _, err := kv.Incr("start/"+ev.ID, 1); err != nil {
			return nil, err
		}
		time.Sleep(time.Duration(ev.Detail.SleepMs) * time.Millisecond)
		if ev.Detail.Fail {
			return nil, errors.New("told to fail")
		}
		if _, err := kv.Incr("end/"+ev.ID, 1); err != nil {
			return nil, err
		}
		return []byte("ok"), nil
	}
	type failure struct {
		ID string `json:"itemIdentifier"`
	}
	var failed []failure
	for _, r := range ev.Records {
		switch r.Source {
		case "mote:queue":
			if _, err := kv.Incr("msg/"+r.Body, 1); err != nil {
				return nil, err
			}
			if strings.HasPrefix(r.Body, "fail") {
				failed = append(failed, failure{r.MessageID})
			}
			if strings.HasPrefix(r.Body, "slow") {
				time.Sleep(200 * time.Millisecond)
			}
		default: // a change event: count it per key and operation
			if _, err := kv.Incr("chg/"+r.Op+"/"+r.Key, 1); err != nil {
				return nil, err
			}
		}
	}
	return json.Marshal(map[string]any{"batchItemFailures": failed})
}
