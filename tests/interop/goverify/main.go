// goverify checks eventstore's checkpoints and proofs with Go's reference
// implementations, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog.
//
// Input (stdin, JSON): {"vkey", "note", "records": [{"index", "leaf_input", "proof"}],
// "trees": [{"size", "root", "proof"}]} with base64 byte strings. The note is opened
// with the verifier key; its checkpoint gives the tree size and root every proof is
// checked against. Output (stdout, JSON): {"note": "ok"|error, "size", "records": [...],
// "trees": [...]}, one "ok" or error message per proof.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type record struct {
	Index     int64    `json:"index"`
	LeafInput string   `json:"leaf_input"`
	Proof     []string `json:"proof"`
}

type tree struct {
	Size  int64    `json:"size"`
	Root  string   `json:"root"`
	Proof []string `json:"proof"`
}

type input struct {
	VKey    string   `json:"vkey"`
	Note    string   `json:"note"`
	Records []record `json:"records"`
	Trees   []tree   `json:"trees"`
}

type output struct {
	Note    string   `json:"note"`
	Size    int64    `json:"size"`
	Records []string `json:"records"`
	Trees   []string `json:"trees"`
}

func hash(b64 string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return h, err
	}
	if len(raw) != tlog.HashSize {
		return h, fmt.Errorf("hash is %d bytes", len(raw))
	}
	copy(h[:], raw)
	return h, nil
}

func hashes(list []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(list))
	for _, s := range list {
		h, err := hash(s)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func verdict(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "goverify: bad input:", err)
		os.Exit(1)
	}
	out := output{Records: []string{}, Trees: []string{}}
	defer func() {
		json.NewEncoder(os.Stdout).Encode(out)
	}()
	verifier, err := note.NewVerifier(in.VKey)
	if err != nil {
		out.Note = "verifier key: " + err.Error()
		return
	}
	n, err := note.Open([]byte(in.Note), note.VerifierList(verifier))
	if err != nil {
		out.Note = err.Error()
		return
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		out.Note = "checkpoint: too few lines"
		return
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		out.Note = "checkpoint size: " + err.Error()
		return
	}
	root, err := hash(lines[2])
	if err != nil {
		out.Note = "checkpoint root: " + err.Error()
		return
	}
	out.Note, out.Size = "ok", size
	for _, r := range in.Records {
		data, err := base64.StdEncoding.DecodeString(r.LeafInput)
		if err != nil {
			out.Records = append(out.Records, err.Error())
			continue
		}
		p, err := hashes(r.Proof)
		if err == nil {
			err = tlog.CheckRecord(p, size, root, r.Index, tlog.RecordHash(data))
		}
		out.Records = append(out.Records, verdict(err))
	}
	for _, t := range in.Trees {
		old, err := hash(t.Root)
		var p []tlog.Hash
		if err == nil {
			p, err = hashes(t.Proof)
		}
		if err == nil {
			err = tlog.CheckTree(p, size, root, t.Size, old)
		}
		out.Trees = append(out.Trees, verdict(err))
	}
}
