//go:build race

package fs

// raceEnabled: the race detector slows every FUSE request several times.
const raceEnabled = true
