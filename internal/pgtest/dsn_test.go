package pgtest

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/newdb?sslmode=disable"},
		{"postgresql://u:p%40ss@db.example:6543", "postgresql://u:p%40ss@db.example:6543/newdb"},
		{"postgres://u@h1:5432,h2:5433/app?sslmode=disable&target_session_attrs=read-write", "postgres://u@h1:5432,h2:5433/newdb?sslmode=disable&target_session_attrs=read-write"},
		{"postgres://u@h/app?dbname=other&sslmode=disable", "postgres://u@h/newdb?sslmode=disable"},
		{"postgres:///app?host=/var/run/postgresql", "postgres:///newdb?host=/var/run/postgresql"},
		{"host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable", "postgres://postgres@127.0.0.1:5432/newdb?sslmode=disable"},
		{"host=localhost user=me password='it\\'s a \\\\secret' dbname = x", "postgres://me:it%27s%20a%20%5Csecret@localhost/newdb"},
		{"host=h1,h2 port=5432,5433 user=u", "postgres://u@h1:5432,h2:5433/newdb"},
		{"host=/var/run/postgresql port=5433 user=u sslmode=disable", "postgres://u@/newdb?host=%2Fvar%2Frun%2Fpostgresql&port=5433&sslmode=disable"},
		{"host=::1 port=5432 user=u", "postgres://u@[::1]:5432/newdb"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "newdb")
		if err != nil {
			t.Errorf("withDatabase(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("withDatabase(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestWithDatabasePreservesSettings checks that keyword/value DSNs convert
// to URLs that pgx parses to the same settings apart from the database.
func TestWithDatabasePreservesSettings(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"host=127.0.0.1 port=5432 user=postgres password='p@ss w/rd?&=' dbname=postgres sslmode=disable application_name=usersync",
		"host=/tmp port=5999 user=postgres sslmode=disable",
		"postgres://a:b%2Fc@127.0.0.1:5432/x?sslmode=disable&application_name=t",
	} {
		out, err := withDatabase(in, "usersync_test_0123abcd")
		if err != nil {
			t.Fatalf("withDatabase(%q): %v", in, err)
		}
		want, err := pgx.ParseConfig(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.ParseConfig(out)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", out, err)
		}
		if got.Database != "usersync_test_0123abcd" {
			t.Errorf("%q: database = %q", out, got.Database)
		}
		if got.Host != want.Host || got.Port != want.Port || got.User != want.User || got.Password != want.Password ||
			got.RuntimeParams["application_name"] != want.RuntimeParams["application_name"] ||
			(got.TLSConfig == nil) != (want.TLSConfig == nil) {
			t.Errorf("%q -> %q changed settings: got %s:%d %s/%s %v, want %s:%d %s/%s %v", in, out,
				got.Host, got.Port, got.User, got.Password, got.RuntimeParams,
				want.Host, want.Port, want.User, want.Password, want.RuntimeParams)
		}
	}
}

func TestWithDatabaseRejectsInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"host='unterminated", "postgres://h:notaport/x"} {
		if out, err := withDatabase(in, "x"); err == nil {
			t.Errorf("withDatabase(%q) = %q, want error", in, out)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	got := redact("postgres://u:p%40ss@h/db")
	if got != "postgres://u:xxxxx@h/db" {
		t.Errorf("redact = %q", got)
	}
}
