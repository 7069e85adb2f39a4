// Command hello-http-lambda is an AWS Lambda function URL handler written
// with github.com/aws/aws-lambda-go and nothing else: deployed on Mote as
// an HTTP function ("http": true) it gets the same payload format 2.0
// event a function URL sends, and its response becomes the HTTP response.
//
//	CGO_ENABLED=0 go build -o bootstrap .
//	mote deploy urls . --runtime process --handler ./bootstrap --http
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	switch req.RawPath {
	case "/binary":
		return events.LambdaFunctionURLResponse{
			StatusCode:      200,
			Headers:         map[string]string{"Content-Type": "application/octet-stream"},
			Body:            base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}),
			IsBase64Encoded: true,
		}, nil
	case "/bad-header":
		return events.LambdaFunctionURLResponse{StatusCode: 200, Headers: map[string]string{"X-Evil": "a\r\nSet-Cookie: injected=1"}}, nil
	case "/missing":
		return events.LambdaFunctionURLResponse{StatusCode: 404, Body: "no such thing"}, nil
	}
	b, _ := json.Marshal(map[string]any{
		"method": req.RequestContext.HTTP.Method, "path": req.RawPath, "query": req.QueryStringParameters,
		"cookies": req.Cookies, "body": req.Body, "base64": req.IsBase64Encoded, "source": req.RequestContext.HTTP.SourceIP,
		"agent": req.Headers["user-agent"],
	})
	return events.LambdaFunctionURLResponse{
		StatusCode: 201,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Handler": "aws-lambda-go"},
		Cookies:    []string{"a=1; Path=/", "b=2; HttpOnly"},
		Body:       string(b),
	}, nil
}

func main() { lambda.Start(handle) }
