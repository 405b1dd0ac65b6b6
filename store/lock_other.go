//go:build !unix

package store

// lockStartUp does not lock where flock is missing: start one process first.
func lockStartUp(string) (func(), error) { return func() {}, nil }
