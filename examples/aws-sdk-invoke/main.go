// Command aws-sdk-invoke invokes a Mote function with the official AWS SDK
// for Go, changing nothing but the endpoint: Mote serves the Lambda Invoke
// API.
//
//	go run . -endpoint http://127.0.0.1:8080 -function hello -payload '{"name":"ada"}'
//	go run . ... -async     # InvocationType Event: queued, 202
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:8080", "Mote server")
	function := flag.String("function", "hello", "function name")
	payload := flag.String("payload", "{}", "event")
	async := flag.Bool("async", false, "invoke with InvocationType Event")
	flag.Parse()

	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: endpoint,
		// Mote checks its own bearer token, not AWS signatures; the SDK
		// needs some credentials to sign with.
		Credentials: credentials.NewStaticCredentialsProvider("mote", "mote", ""),
	})
	in := &lambda.InvokeInput{FunctionName: function, Payload: []byte(*payload)}
	if *async {
		in.InvocationType = types.InvocationTypeEvent
	}
	out, err := client.Invoke(context.Background(), in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		os.Exit(1)
	}
	fmt.Printf("status %d version %s function-error %q\n%s\n", out.StatusCode, aws.ToString(out.ExecutedVersion), aws.ToString(out.FunctionError), out.Payload)
}
