// Command mote is the Mote serverless platform: `mote serve` runs it, the
// other subcommands are thin clients of its HTTP API.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mote-run/mote/internal/sandbox"
)

func main() {
	// A sandboxed process function starts as this binary re-executed as
	// its init; that never returns here.
	sandbox.MaybeRunInit()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"serve":    {"run the platform on this machine", cmdServe},
		"demo":     {"start a server, deploy the bundled examples, invoke them", cmdDemo},
		"deploy":   {"deploy a function: deploy NAME FILE.wasm|DIR [flags]", cmdDeploy},
		"invoke":   {"invoke a function: invoke NAME [-d DATA|-d @FILE]", cmdInvoke},
		"ls":       {"list functions", cmdList},
		"info":     {"show a function and its versions: info NAME", cmdInfo},
		"rm":       {"remove a function: rm NAME", cmdRemove},
		"rollback": {"point a function at an earlier version: rollback NAME [VERSION]", cmdRollback},
		"logs":     {"show a function's logs: logs NAME [-f] [-n N] [--invocation ID]", cmdLogs},
		"version":  {"print the version", cmdVersion},
		"bench":    {"run an end-to-end benchmark: bench gateway", cmdBench},
		"kv":       {"key-value storage: kv get|put|rm|ls|incr BUCKET [KEY] [VALUE]", cmdKV},
		"obj":      {"objects, streamed: obj put|get|head|rm|ls BUCKET [KEY] [FILE]", cmdObj},
		"trace":    {"draw an invocation's call tree: trace ID", cmdTrace},
		"usage":    {"CPU and billed time per function: usage [NAME]", cmdUsage},
		"dlq":      {"dead letters of async invocations: dlq ls | dlq redrive ID", cmdDLQ},
		"key":      {"API keys: key create --scope SCOPE... | key ls | key revoke ID", cmdKey},
		"audit":    {"the audit log of management actions: audit [--since 24h]", cmdAudit},
		"schedule": {"run a function on a cron or rate schedule: schedule add NAME --cron EXPR --fn F | ls | rm NAME", cmdSchedule},
		"consumer": {"run a function on batches of a queue's items: consumer add NAME --queue B/Q --fn F | ls | rm NAME", cmdConsumer},
		"watch":    {"run a function on the puts and deletes in a bucket: watch add NAME --kv B [--prefix P] --fn F | ls | rm NAME", cmdWatch},
		"cluster":  {"the cluster this server is a node of: cluster status", cmdCluster},
		"route":    {"routes to functions: route add '[HOST]/PATH[/*]' FN [--public] [--cors ORIGINS] | ls | rm PATTERN", cmdRoute},
		"alias":    {"aliases of versions: alias set FN ALIAS VERSION [--weight V=P%] | ls FN | rm FN ALIAS", cmdAlias},
		"secret":   {"secrets granted to functions: secret set NAME (value on stdin) | ls | rm NAME", cmdSecret},
		"new":      {"write a new function from a template: new NAME --template go|go-wasm|wasi|python|node|aws-lambda-go", cmdNew},
		"sdk":      {"write an SDK that the binary carries: sdk go DIR", cmdSDK},
		"dev":      {"rebuild, redeploy and stream logs on every save: dev [DIR]", cmdDev},
		"config":   {"print a function's effective config: config NAME [--json]", cmdConfig},
	}
}

// run is main without the process: it parses args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "bench-peer" { // the harness's baseline server; not listed
		return cmdBenchPeer(args[1:], stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mote: unknown command %q (see mote help)\n", args[0])
		return 2
	}
	code := c.run(args[1:], stdout, stderr)
	if code == 2 && askedHelp(args[1:]) {
		return 0 // the command printed its flags: that was the answer
	}
	return code
}

// askedHelp reports whether args hold -h, -help or --help before "--".
func askedHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mote — serverless functions on your own machines\n\nUsage: mote COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nClient commands find the server from --server or MOTE_SERVER (default http://127.0.0.1:8080)\nand send MOTE_TOKEN (or --token) as a bearer token (an API key or the admin token);\nan https:// server with a self-signed certificate needs --ca-cert or MOTE_CA_CERT. Run 'mote COMMAND -h' for a command's flags.")
}

// envList is a repeatable K=V flag.
type envList map[string]string

func (e envList) String() string {
	var parts []string
	for k, v := range e {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (e envList) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", s)
	}
	e[k] = v
	return nil
}
