// Package fakekit is the shared machinery of the provider fakes (the [Fake]
// interface every fake implements, and [Faults], their latency and failure
// injection), used by tests and by the demo. It does not import the testing
// package, so the demo and the binary that links it do not either; the
// contract suite that exercises the fakes is in package providertest.
package fakekit

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/usersync/usersync/provider"
)

// Fake is an in-process imitation of one provider's REST API and webhook
// sender, faithful to the real one (docs/providers.md), with fault injection.
// Implementations are safe for concurrent use.
type Fake interface {
	// URL is the API base URL to configure the provider client with (the value
	// of STACK_API_URL, CLERK_API_URL or WORKOS_API_URL).
	URL() string
	// Env returns the environment variables that point usersync at this fake
	// (credentials, webhook secret, API URL).
	Env() map[string]string
	// Provider returns a client for this fake, configured with its valid
	// credentials and the fake's HTTP client.
	Provider() provider.Provider
	// ProviderWithBadCredentials returns a client whose credentials the fake
	// rejects (401).
	ProviderWithBadCredentials() provider.Provider

	// CreateUser adds a user with generated, realistic data and returns its id.
	CreateUser() string
	// UpdateUser changes the user's profile (name, metadata, ...) and bumps its
	// update time; false if the user does not exist.
	UpdateUser(id string) bool
	// DeleteUser removes the user; false if it did not exist.
	DeleteUser(id string) bool
	// Seed creates n users quickly (for backfill tests and benchmarks).
	Seed(n int) []string
	// Snapshot returns every live user's object exactly as the get-user
	// endpoint returns it, by id.
	Snapshot() map[string]json.RawMessage

	// Webhook builds a signed delivery of the given event for the user's
	// current state (EventUserDeleted: a deletion event for id), as the
	// provider would send it now. The header carries the signature.
	Webhook(kind provider.EventKind, id string) (body []byte, header http.Header)
	// IgnoredWebhook builds a signed delivery of an event that is not about
	// users (e.g. team.created).
	IgnoredWebhook() (body []byte, header http.Header)
	// SignWebhook signs an arbitrary body as the provider would, at time at.
	SignWebhook(body []byte, at time.Time) http.Header

	// SetLatency delays every API response by d.
	SetLatency(d time.Duration)
	// FailNext makes the next n API requests answer status (n < 0: all until
	// ClearFaults). With status 429 the answer carries Retry-After: retryAfter
	// (whole seconds, at least 1). Status 0 means: drop the connection without
	// answering (a connection reset).
	FailNext(n int, status int, retryAfter time.Duration)
	// ClearFaults removes latency and failure injection.
	ClearFaults()
	// Requests returns how many API requests reached the fake (including
	// failed ones); tests use it to check that bursts coalesce.
	Requests() int64

	// Close stops the fake's server.
	Close()
}

// HiddenUsersFake is a [Fake] of a provider whose list endpoint leaves some
// users out unless the request asks for them, while its get-user endpoint
// and its webhooks show them (Stack Auth's anonymous and restricted users).
// The contract suite (providertest.Run) checks that the client lists them all
// the same.
type HiddenUsersFake interface {
	Fake
	// CreateHiddenUsers creates users of every kind that the provider's list
	// endpoint leaves out by default, and returns their ids.
	CreateHiddenUsers() []string
}
