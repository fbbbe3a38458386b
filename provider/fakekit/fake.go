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
	// ClearFaults removes latency and failure injection (not the rate
	// limit).
	ClearFaults()
	// SetRateLimit makes the fake enforce the provider's rate limit as a
	// token bucket: perSecond requests with bursts of up to burst; beyond
	// it, 429 with Retry-After in the provider's own error shape
	// (docs/providers.md). perSecond ≤ 0 removes it.
	SetRateLimit(perSecond float64, burst int)
	// RateLimited returns how many API requests the rate limit answered 429.
	RateLimited() int64
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

// OrganizationsFake is a [Fake] that also imitates the provider's
// organizations (Stack Auth teams) and memberships: REST endpoints and
// webhooks, faithful to the real ones (docs/providers.md). Memberships name
// users of the same fake.
type OrganizationsFake interface {
	Fake
	// Organizations returns the client's organization reader (the same
	// client as Provider, which implements provider.Organizations).
	Organizations() provider.Organizations

	// CreateOrganization adds an organization with generated, realistic data
	// and returns its id. When creatorID is not "", that user becomes its
	// first member as the provider does it (Stack Auth: silently, with no
	// membership webhook; Clerk and WorkOS: the admin role).
	CreateOrganization(creatorID string) string
	// UpdateOrganization renames the organization (and bumps its update
	// time); where memberships embed the organization, they change too.
	UpdateOrganization(id string) bool
	// DeleteOrganization removes the organization and, as the provider does,
	// all its memberships (without membership events).
	DeleteOrganization(id string) bool
	// AddMember makes the user a member (role "" = the provider's default
	// member role; ignored by Stack Auth); false if either does not exist or
	// the membership exists.
	AddMember(orgID, userID, role string) bool
	// UpdateMember changes a membership (its role; Stack Auth, which has no
	// roles, changes nothing and returns true if the membership exists).
	UpdateMember(orgID, userID, role string) bool
	// RemoveMember ends a membership; false if there was none.
	RemoveMember(orgID, userID string) bool
	// SeedOrganizations creates n organizations, each with members drawn from
	// the existing users (up to perOrg), quickly, and returns their ids.
	SeedOrganizations(n, perOrg int) []string
	// OrganizationsSnapshot returns every live organization's object exactly
	// as the get-organization endpoint returns it, by id.
	OrganizationsSnapshot() map[string]json.RawMessage
	// MembershipsSnapshot returns every membership's object as the
	// organization's membership list returns it, by "<organization_id>:<user_id>".
	MembershipsSnapshot() map[string]json.RawMessage

	// OrganizationWebhook builds a signed delivery of an organization event
	// (EventOrganizationChanged or EventOrganizationDeleted) for the
	// organization's current state, as the provider would send it now.
	OrganizationWebhook(kind provider.EventKind, orgID string) (body []byte, header http.Header)
	// MembershipWebhook builds a signed delivery of a membership event; deleted
	// says it is the membership's deletion (the membership may be gone).
	MembershipWebhook(orgID, userID string, deleted bool) (body []byte, header http.Header)
}
