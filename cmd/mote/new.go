package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/scaffold"
)

func cmdNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tmpl := fs.String("template", "go-wasm", "the template (see --list)")
	dir := fs.String("dir", "", "where to write it (default ./NAME)")
	list := fs.Bool("list", false, "list the templates")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if *list {
		for _, t := range scaffold.Templates() {
			fmt.Fprintf(stdout, "%-14s %s\n", t.Name, t.Summary)
		}
		return 0
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote new NAME [--template go|go-wasm|http-go|wasi|python|node|aws-lambda-go] [--dir DIR]   (mote new --list)")
		return 2
	}
	name := pos[0]
	if err := registry.ValidName(name); err != nil {
		return fail(stderr, err)
	}
	if *dir == "" {
		*dir = name
	}
	if err := scaffold.New(*dir, name, *tmpl); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %s (template %s)\n\n  cd %s\n  mote deploy .        # builds if needed, deploys as %s\n  mote invoke %s\n  mote dev .           # redeploy on every save, logs streamed\n", *dir, *tmpl, *dir, name, name)
	return 0
}

func cmdSDK(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sdk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 || pos[0] != "go" {
		fmt.Fprintf(stderr, "usage: mote sdk go DIR   (writes the Go SDK module %s there; point a replace directive at it)\n", scaffold.GoSDKModule)
		return 2
	}
	if err := scaffold.WriteGoSDK(pos[1]); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote the Go SDK (%s) to %s\n", scaffold.GoSDKModule, pos[1])
	return 0
}
