// Command hello-go-lambda is an AWS Lambda function written with
// github.com/aws/aws-lambda-go/lambda and nothing else: Mote's process
// runtime serves it the Lambda Runtime API, so it runs with no change.
//
// Build it for Mote exactly as for Lambda's provided runtimes:
//
//	CGO_ENABLED=0 go build -o bootstrap .
//
// and deploy the directory with the handler "./bootstrap".
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Request is the event this function expects.
type Request struct {
	Name string `json:"name"`
}

// Response is what it answers.
type Response struct {
	Greeting  string `json:"greeting"`
	RequestID string `json:"request_id"`
	Function  string `json:"function"`
}

func handle(ctx context.Context, req Request) (Response, error) {
	if req.Name == "" {
		return Response{}, fmt.Errorf("name is required")
	}
	lc, _ := lambdacontext.FromContext(ctx)
	var id string
	if lc != nil {
		id = lc.AwsRequestID
	}
	fmt.Fprintf(os.Stderr, "greeting %s\n", req.Name)
	return Response{
		Greeting:  "hello " + req.Name,
		RequestID: id,
		Function:  lambdacontext.FunctionName,
	}, nil
}

func main() {
	lambda.Start(handle)
}
