package mountutil

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"pass show cloud", []string{"pass", "show", "cloud"}},
		{"  pass\tshow  \n cloud ", []string{"pass", "show", "cloud"}},
		{`secret-tool lookup service "my cloud"`, []string{"secret-tool", "lookup", "service", "my cloud"}},
		{`sh -c 'echo "$HOME" *'`, []string{"sh", "-c", `echo "$HOME" *`}},
		{`a"b c"'d e'f`, []string{"ab cd ef"}},
		{`"say \"hi\" \\ \n"`, []string{`say "hi" \ \n`}},
		{`a\ b \'c\'`, []string{"a b", "'c'"}},
		{`"" ''`, []string{"", ""}},
		{`$HOME ~/x *.txt`, []string{"$HOME", "~/x", "*.txt"}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{`"open`, `'open`, `end\`, `a "b\"`} {
		if got, err := SplitCommand(in); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzSplitCommand checks that any command line splits without panicking
// and that words quoted back split to the same words.
func FuzzSplitCommand(f *testing.F) {
	f.Add(`pass show "my cloud"`)
	f.Add(`a\ b 'c d' "e\"f"`)
	f.Add(`"unterminated`)
	f.Fuzz(func(t *testing.T, in string) {
		words, err := SplitCommand(in)
		if err != nil {
			return
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := SplitCommand(strings.Join(quoted, " "))
		if err != nil || len(again) != len(words) {
			t.Fatalf("%q: words %q quoted back split to %q, %v", in, words, again, err)
		}
		for i := range words {
			if again[i] != words[i] {
				t.Fatalf("%q: word %q came back as %q", in, words[i], again[i])
			}
		}
	})
}

func TestRunPasswordCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "pw")
	// It prints the password, a second line, its environment's
	// CLOUDMOUNT_PASSWORD and what it read from standard input.
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"s3cret pass\"\necho \"env=${CLOUDMOUNT_PASSWORD:-none} stdin=$(cat)\"\necho warning >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin", PasswordEnv + "=leaked"}
	var stderr bytes.Buffer
	p, err := RunPasswordCommand(context.Background(), script, env, &stderr)
	if err != nil || p != "s3cret pass" {
		t.Fatalf("got %q, %v; want the first line", p, err)
	}
	if stderr.String() != "warning\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
	// The second line shows the environment and standard input.
	sh := "sh -c 'echo \"env=${" + PasswordEnv + ":-none} stdin=$(cat)\"'"
	if p, err := RunPasswordCommand(context.Background(), sh, env, &stderr); err != nil || p != "env=none stdin=" {
		t.Errorf("environment and standard input: %q, %v; want no password variable and /dev/null", p, err)
	}

	for _, tc := range []struct {
		line, want string
	}{
		{"sh -c 'echo hunter2 output; echo hunter2 error >&2; exit 3'", "password command sh failed: exit status 3"},
		{"sh -c 'echo; echo hunter2'", "password command sh printed no password"},
		{"/nonexistent/pass show", "password command /nonexistent/pass: "},
		{`pass "open`, `password command: unterminated " quote`},
		{"  ", "password command: empty command"},
	} {
		_, err := RunPasswordCommand(context.Background(), tc.line, env, &stderr)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.line, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the output: %v", tc.line, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = RunPasswordCommand(ctx, "sleep 30", env, &stderr)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("a hanging command: %v after %v", err, time.Since(start))
	}
}
