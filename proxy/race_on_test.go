//go:build race

package proxy

// raceEnabled: the race detector's instrumentation allocates, so
// allocation counts are not the program's own.
const raceEnabled = true
