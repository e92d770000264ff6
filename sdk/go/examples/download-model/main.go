// Example download-model: fetch a logged model's files by reference and print their sha256.
//
//	MODELBOX_TOKEN=... download-model grpc://127.0.0.1:50051 MODEL_REF [DEST]
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"modelbox.dev/sdk/go/modelbox"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: download-model URI MODEL_REF [DEST]")
		os.Exit(2)
	}
	dest := "."
	if len(os.Args) > 3 {
		dest = os.Args[3]
	}
	client, err := modelbox.Dial(os.Args[1], modelbox.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	model, err := client.DownloadModel(ctx, os.Args[2], dest)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, f := range model.Files {
		fmt.Printf("%s  %s\n", f.SHA256, f.Path)
	}
}
