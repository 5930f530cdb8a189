package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// commandHelp is the help of one command, in parts.
type commandHelp struct {
	head  string // "Usage: ..." line, paragraphs, "Flags:"
	flags *pflag.FlagSet
	tail  string
}

// helpCollector is a writer that writeHelp fills with the parts of the
// help instead of its text, so that the man page is made from the same
// source as --help.
type helpCollector struct {
	helps []commandHelp
}

// Write takes text written around the help (none is expected).
func (c *helpCollector) Write(p []byte) (int, error) { return len(p), nil }

// manTopics are the commands with a section in the man page, mount first.
var manTopics = []string{"mount", "unmount", "status", "sync", "verify", "serve"}

// manFiles and manSeeAlso are the man page's FILES and SEE ALSO sections.
const (
	manFiles = `.TP
.I ~/.config/cloudmount/secrets
Your passwords, one "URL user password" or "MOUNTPOINT user password" per line; refused unless mode 0600.
.TP
.I /etc/cloudmount/secrets
The system-wide passwords, in the same form; refused unless it belongs to root, is not writable by its group and is closed to others.
.TP
.I ~/.netrc
Passwords by host ("machine HOST login USER password PW"); refused unless mode 0600.
.TP
.I ~/.cache/cloudmount/
A cache directory per source and user: the block cache, the journal of uploads not yet on the server, the local metadata index, and daemon.log where the machine has no system log (crash.log where it has one).
`
	manSeeAlso = `.BR mount (8),
.BR fstab (5),
.BR mount.fuse3 (8),
.BR fusermount3 (1),
.BR journalctl (1),
.BR systemd.mount (5)
`
)

// writeManPage writes cloudmount(1) in roff: the main help, the mount
// command's flags and options, and every other command's help.
func writeManPage(w io.Writer) error {
	c := &helpCollector{}
	for _, topic := range manTopics {
		if err := helpCommand([]string{topic}, c); err != nil {
			return err
		}
	}
	if len(c.helps) != len(manTopics) {
		return fmt.Errorf("man page: %d of %d commands gave their help", len(c.helps), len(manTopics))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH CLOUDMOUNT 1 \"\" %s \"User Commands\"\n", roffQuote("cloudmount "+versionString()))
	paras := paragraphs(mainUsage)
	b.WriteString(".SH NAME\ncloudmount \\- " + roffText(strings.TrimSuffix(strings.TrimPrefix(paras[0], "cloudmount "), ".")) + "\n")
	b.WriteString(".SH SYNOPSIS\n")
	for _, h := range c.helps {
		usage, _, _ := strings.Cut(h.head, "\n")
		b.WriteString(".B " + roffText(strings.TrimPrefix(usage, "Usage: ")) + "\n.br\n")
	}
	b.WriteString(".B cloudmount version\n.br\n.B cloudmount help\n.RI [ COMMAND ]\n")
	b.WriteString(".SH DESCRIPTION\n")
	var exit []string
	for _, p := range paras[1:] {
		switch {
		case strings.HasPrefix(p, "Usage:"):
			// the synopsis
		case strings.HasPrefix(p, "Exit codes:"):
			exit = append(exit, p)
		default:
			writeParagraph(&b, p)
		}
	}
	mount := c.helps[0]
	b.WriteString(".SH OPTIONS\n")
	writeParagraphs(&b, headText(mount.head))
	writeFlags(&b, mount.flags)
	b.WriteString(".SH MOUNT OPTIONS\n")
	writeParagraphs(&b, mount.tail)
	b.WriteString(".SH COMMANDS\n")
	for _, h := range c.helps[1:] {
		usage, _, _ := strings.Cut(h.head, "\n")
		b.WriteString(".SS " + roffText(strings.TrimPrefix(usage, "Usage: ")) + "\n")
		writeParagraphs(&b, headText(h.head))
		writeFlags(&b, h.flags)
		writeParagraphs(&b, h.tail)
	}
	b.WriteString(".SH EXIT STATUS\n")
	for _, p := range exit {
		writeParagraph(&b, strings.TrimPrefix(p, "Exit codes: "))
	}
	b.WriteString(".SH FILES\n" + manFiles)
	b.WriteString(".SH SEE ALSO\n" + manSeeAlso)
	_, err := w.Write(b.Bytes())
	return err
}

// headText is a help head without its "Usage:" line and "Flags:" line.
func headText(head string) string {
	_, rest, _ := strings.Cut(head, "\n")
	return strings.TrimSuffix(strings.TrimSpace(rest), "Flags:")
}

// paragraphs splits text at blank lines, dropping the pointers to other
// help texts.
func paragraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		var lines []string
		for _, l := range strings.Split(p, "\n") {
			if !strings.HasPrefix(l, "Run 'cloudmount help") {
				lines = append(lines, l)
			}
		}
		if p = strings.TrimRight(strings.Join(lines, "\n"), "\n"); strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// writeParagraphs writes each paragraph of text.
func writeParagraphs(b *bytes.Buffer, text string) {
	for _, p := range paragraphs(text) {
		writeParagraph(b, p)
	}
}

// writeParagraph writes one paragraph: filled text, or as it stands when
// it has indented lines (examples). A leading "Heading:" line of an
// example stays a line of text.
func writeParagraph(b *bytes.Buffer, p string) {
	lines := strings.Split(p, "\n")
	indented := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "  ") {
			indented = i
			break
		}
	}
	b.WriteString(".PP\n")
	if indented < 0 {
		b.WriteString(roffText(strings.Join(lines, "\n")) + "\n")
		return
	}
	if indented > 0 {
		b.WriteString(roffText(strings.Join(lines[:indented], "\n")) + "\n")
	}
	b.WriteString(".RS 2\n.nf\n")
	for _, l := range lines[indented:] {
		b.WriteString(roffLine(strings.TrimPrefix(l, "  ")) + "\n")
	}
	b.WriteString(".fi\n.RE\n")
}

// writeFlags writes the flags of a FlagSet as a tagged list.
func writeFlags(b *bytes.Buffer, flags *pflag.FlagSet) {
	for _, r := range flagRows(flags) {
		b.WriteString(".TP\n")
		tag := `\fB\-\-` + roffEscape(r.long) + `\fR`
		if r.short != "" {
			tag = `\fB\-` + roffEscape(r.short) + `\fR, ` + tag
		}
		if r.arg != "" {
			tag += ` \fI` + roffEscape(r.arg) + `\fR`
		}
		b.WriteString(tag + "\n" + roffText(r.usage) + "\n")
	}
}

// roffEscape escapes text for roff: backslashes, and hyphens as minus
// signs (so that options can be copied from the page).
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// roffText escapes lines of filled text for roff, without their
// indentation.
func roffText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = roffLine(strings.TrimLeft(l, " "))
	}
	return strings.Join(lines, "\n")
}

// roffLine escapes one line; a line starting with a dot or an apostrophe
// (a request to roff) is protected with \&.
func roffLine(l string) string {
	l = roffEscape(l)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = `\&` + l
	}
	return l
}

// roffQuote quotes a macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `""`) + `"`
}
