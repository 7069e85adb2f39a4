// Command streamlambda is a test function: an aws-lambda-go handler that
// streams its response (Lambda response streaming). It sends one
// server-sent event, keeps working for a second and a half, then sends a
// second event and ends.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(ctx context.Context, req events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
	pr, pw := io.Pipe()
	go func() {
		fmt.Fprint(pw, "data: first\n\n")
		time.Sleep(1500 * time.Millisecond) // the work the stream reports on
		fmt.Fprint(pw, "data: second\n\n")
		pw.Close()
	}()
	return &events.LambdaFunctionURLStreamingResponse{
		StatusCode: 200,
		Headers:    map[string]string{"Content-Type": "text/event-stream"},
		Body:       pr,
	}, nil
}

func main() { lambda.Start(handle) }
