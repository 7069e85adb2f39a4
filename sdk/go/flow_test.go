package mote

import (
	"reflect"
	"testing"
)

func TestDecodeResults(t *testing.T) {
	enc := appendArgs(nil, []byte(""), []byte("out"), []byte("pending"), nil, []byte("timeout"), []byte("slow"))
	tests := []struct {
		name string
		b    []byte
		n    int
		want []Result
		code string
	}{
		{"mixed", enc, 3, []Result{{Output: []byte("out")}, {Pending: true}, {Err: &Error{Code: "timeout", Message: "slow"}}}, ""},
		{"count mismatch", enc, 2, nil, "internal"},
		{"malformed", []byte{0x05, 'a'}, 1, nil, "internal"},
		{"empty", nil, 0, []Result{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeResults(tt.b, tt.n)
			if tt.code != "" {
				e, ok := err.(*Error)
				if !ok || e.Code != tt.code {
					t.Fatalf("err = %v, want code %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
