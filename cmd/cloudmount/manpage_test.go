package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// manText is the man page with roff's escapes and font changes undone,
// for searching.
func manText(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := helpCommand([]string{"--man"}, &b); err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(`\-`, "-", `\fB`, "", `\fI`, "", `\fR`, "", `\e`, `\`, `\&`, "").Replace(b.String())
}

// readmeOptionsTable returns the rows of the README's option table.
func readmeOptionsTable(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Options\n")
	if !ok {
		t.Fatal("README has no ### Options section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	var rows []string
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "| `") {
			rows = append(rows, l)
		}
	}
	if len(rows) == 0 {
		t.Fatal("README's Options section has no table")
	}
	return rows
}

// mentions reports whether text names the option opt ("--uid", "-f") as
// a word: not as the start of a longer name.
func mentions(text, opt string) bool {
	return regexp.MustCompile(`(^|[^-\w])` + regexp.QuoteMeta(opt) + `($|[^-\w])`).MatchString(text)
}

// TestOptionsAgree: every flag of the mount command, whatever flags are
// added, is in the README's option table, in --help and in the man page;
// and the README's table names no flag that does not exist.
func TestOptionsAgree(t *testing.T) {
	var f mountFlags
	flags := newMountFlagSet(&f)
	rows := readmeOptionsTable(t)
	var firstColumns []string
	for _, r := range rows {
		cells := strings.Split(r, " | ")
		firstColumns = append(firstColumns, strings.TrimPrefix(cells[0], "| "))
	}
	table := strings.Join(firstColumns, "\n")
	var help bytes.Buffer
	mountUsage(&help)
	man := manText(t)
	_, manOptions, _ := strings.Cut(man, "\n.SH OPTIONS\n")
	manOptions, _, _ = strings.Cut(manOptions, "\n.SH ")
	n := 0
	flags.VisitAll(func(fl *pflag.Flag) {
		if fl.Hidden {
			return
		}
		n++
		names := []string{"--" + fl.Name}
		if fl.Shorthand != "" {
			names = append(names, "-"+fl.Shorthand)
		}
		for _, name := range names {
			for _, where := range []struct{ what, text string }{
				{"the README's option table (first column)", table},
				{"cloudmount help mount", help.String()},
				{"the OPTIONS of the man page", manOptions},
			} {
				if !mentions(where.text, name) {
					t.Errorf("%s is not in %s", name, where.what)
				}
			}
		}
	})
	if n < 30 {
		t.Fatalf("only %d mount flags: the flag set was not read", n)
	}
	for _, m := range regexp.MustCompile("`(--?[a-z][-a-z0-9]*)").FindAllStringSubmatch(table, -1) {
		name := strings.TrimLeft(m[1], "-")
		var fl *pflag.Flag
		if strings.HasPrefix(m[1], "--") {
			fl = flags.Lookup(name)
		} else {
			fl = flags.ShorthandLookup(name)
		}
		if fl == nil || fl.Hidden {
			t.Errorf("the README's option table names %s, which is no mount flag", m[1])
		}
	}
}

// TestManPage: the man page is well-formed roff (groff finds nothing to
// warn about where it is installed) and has its sections.
func TestManPage(t *testing.T) {
	var b bytes.Buffer
	if err := helpCommand([]string{"--man"}, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{".TH CLOUDMOUNT 1 ", "\n.SH NAME\ncloudmount \\- mounts", "\n.SH SYNOPSIS\n", "\n.SH DESCRIPTION\n",
		"\n.SH OPTIONS\n", "\n.SH MOUNT OPTIONS\n", "\n.SH COMMANDS\n", "\n.SS cloudmount sync", "\n.SH EXIT STATUS\n",
		"\n.SH FILES\n", "/etc/cloudmount/secrets", "\n.SH SEE ALSO\n"} {
		if !strings.Contains(page, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	for i, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "'") || strings.HasPrefix(l, ".") && !regexp.MustCompile(`^\.(TH|SH|SS|PP|TP|B|BR|I|RI|br|nf|fi|RS|RE)( |$)`).MatchString(l) {
			t.Errorf("line %d is an unknown roff request: %q", i+1, l)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Log("groff is not installed: the page is not formatted")
		return
	}
	cmd := exec.Command(groff, "-man", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, out)
	}
}
