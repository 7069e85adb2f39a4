// Command hello-wagi is an HTTP function with no SDK at all: a WASI
// command that follows WAGI (CGI): the request's variables in its
// environment, its body on stdin, CGI headers then the body on stdout.
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello-wagi.wasm .
//	mote deploy hello-wagi hello-wagi.wasm --http wagi
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	body, _ := io.ReadAll(os.Stdin)
	if os.Getenv("PATH_INFO") == "/teapot" {
		fmt.Print("Status: 418 I'm a teapot\nContent-Type: text/plain\n\nshort and stout\n")
		return
	}
	fmt.Print("Content-Type: text/plain\n")
	fmt.Print("Set-Cookie: a=1\nSet-Cookie: b=2\n\n")
	fmt.Printf("%s %s?%s from %s\n", os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"), os.Getenv("QUERY_STRING"), os.Getenv("REMOTE_ADDR"))
	fmt.Printf("agent=%s body=%s\n", os.Getenv("HTTP_USER_AGENT"), body)
}
