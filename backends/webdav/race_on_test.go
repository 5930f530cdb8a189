//go:build race

package webdav_test

// raceDetector is set in builds with -race, which run encoding/xml about
// ten times slower and change what the heap holds.
const raceDetector = true
