//go:build !unix

package main

// alive cannot ask where there is no kill(pid, 0); the pid file is
// trusted.
func alive(pid int) bool { return true }
