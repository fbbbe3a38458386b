// Package integration_test proves docs/guarantees.md end to end: real PostgreSQL, the
// real HTTP server and workers (in process, or the built binary where a
// process must be killed), and provider fakes that behave like the real APIs.
package integration_test
