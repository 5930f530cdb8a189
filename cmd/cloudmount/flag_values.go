package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// duration is a flag value that takes a Go duration ("30s", "1m") or a plain
// number of seconds, as fstab users write it.
type duration time.Duration

// Set parses a duration or a number of seconds.
func (d *duration) Set(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
			return fmt.Errorf("not a duration")
		}
		*d = duration(secs * float64(time.Second))
	} else {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (want e.g. 30s, 2m or a number of seconds)")
		}
		*d = duration(v)
	}
	if *d < 0 {
		return fmt.Errorf("negative duration")
	}
	return nil
}

// String formats the duration the way time.Duration does.
func (d *duration) String() string { return time.Duration(*d).String() }

// Type names the value in help texts.
func (d *duration) Type() string { return "duration" }

// byteSize is a flag value that takes a size in bytes with an optional
// suffix: K, M, G, T (powers of 1024; "KiB", "MB" and the like are read the
// same way).
type byteSize int64

// Set parses a size.
func (b *byteSize) Set(s string) error {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*float64(mult) > math.MaxInt64/2 {
		return fmt.Errorf("not a size (want e.g. 2G, 500M or a number of bytes)")
	}
	*b = byteSize(v * float64(mult))
	return nil
}

// String formats the size in bytes.
func (b *byteSize) String() string {
	if *b == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*b), 10)
}

// Type names the value in help texts.
func (b *byteSize) Type() string { return "size" }

// octalMode is a flag value that takes permission bits in octal, as chmod
// and fstab write them ("0640", "640", "0o640"), up to max.
type octalMode struct {
	bits uint32
	max  uint32
	// quiet: the zero value is shown as "" (no default in the help).
	quiet bool
}

// Set parses octal permission bits.
func (m *octalMode) Set(s string) error {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" {
		return fmt.Errorf("not an octal mode (want e.g. 0640)")
	}
	if uint32(v) > m.max {
		return fmt.Errorf("mode %04o is more than %04o", v, m.max)
	}
	m.bits = uint32(v)
	return nil
}

// String formats the bits as four octal digits.
func (m *octalMode) String() string {
	if m.quiet && m.bits == 0 {
		return ""
	}
	return fmt.Sprintf("%04o", m.bits)
}

// Type names the value in help texts.
func (m *octalMode) Type() string { return "mode" }
