package pgtest

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// withDatabase returns a URL-form connection string that connects like
// connString but to database dbname. connString may be a URL
// (postgres://...) or a keyword/value DSN (host=... user=...); the latter is
// converted to URL form. The result is validated with pgx.ParseConfig.
func withDatabase(connString, dbname string) (string, error) {
	if _, err := pgx.ParseConfig(connString); err != nil {
		return "", fmt.Errorf("pgtest: invalid connection string: %w", err)
	}
	var (
		out string
		err error
	)
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		out, err = replaceURLDatabase(connString, dbname)
	} else {
		out, err = keywordToURL(connString, dbname)
	}
	if err != nil {
		return "", err
	}
	cfg, err := pgx.ParseConfig(out)
	if err != nil {
		return "", fmt.Errorf("pgtest: derived connection string is invalid: %w", err)
	}
	if cfg.Database != dbname {
		return "", fmt.Errorf("pgtest: derived connection string selects database %q, want %q", cfg.Database, dbname)
	}
	return out, nil
}

// replaceURLDatabase swaps the path of a postgres:// URL for /dbname and
// drops any dbname query parameter (which would otherwise override the
// path). The rest of the URL (multiple hosts, userinfo, parameters) is kept
// verbatim, which net/url could not guarantee for multi-host URLs.
func replaceURLDatabase(u, dbname string) (string, error) {
	schemeEnd := strings.Index(u, "://") + len("://")
	rest := u[schemeEnd:]

	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	// As in libpq, only '/' ends the authority; the path follows it.
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	if strings.Contains(query, "#") {
		return "", errors.New("pgtest: connection URL must not contain a fragment")
	}
	if query != "" {
		values, err := url.ParseQuery(query)
		if err != nil {
			return "", fmt.Errorf("pgtest: parse connection URL query: %w", err)
		}
		if values.Has("dbname") {
			values.Del("dbname")
			query = values.Encode()
		}
	}

	var b strings.Builder
	b.WriteString(u[:schemeEnd])
	b.WriteString(authority)
	b.WriteByte('/')
	b.WriteString(url.PathEscape(dbname))
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String(), nil
}

// keywordToURL converts a keyword/value DSN into a postgres:// URL for
// database dbname. TCP hosts go into the authority; Unix-socket hosts (and
// their ports) and all other settings become query parameters.
func keywordToURL(dsn, dbname string) (string, error) {
	settings, err := parseKeywordValue(dsn)
	if err != nil {
		return "", err
	}
	delete(settings, "dbname")

	u := url.URL{Scheme: "postgres", Path: "/" + dbname}
	if user, ok := settings["user"]; ok {
		if pw, ok := settings["password"]; ok {
			u.User = url.UserPassword(user, pw)
			delete(settings, "password")
		} else {
			u.User = url.User(user)
		}
		delete(settings, "user")
	}

	if host, ok := settings["host"]; ok && host != "" {
		hosts := strings.Split(host, ",")
		var ports []string
		if port, ok := settings["port"]; ok && port != "" {
			ports = strings.Split(port, ",")
		}
		socket := false
		for _, h := range hosts {
			if strings.HasPrefix(h, "/") || strings.HasPrefix(h, "@") || h == "" {
				socket = true
			}
		}
		if !socket && (len(ports) <= 1 || len(ports) == len(hosts)) {
			netlocs := make([]string, len(hosts))
			for i, h := range hosts {
				if strings.Contains(h, ":") {
					h = "[" + h + "]" // IPv6 literal
				}
				switch {
				case len(ports) == len(hosts):
					h += ":" + ports[i]
				case len(ports) == 1:
					h += ":" + ports[0]
				}
				netlocs[i] = h
			}
			u.Host = strings.Join(netlocs, ",")
			delete(settings, "host")
			delete(settings, "port")
		}
	}

	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	q := url.Values{}
	for _, k := range keys {
		q.Set(k, settings[k])
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// parseKeywordValue parses a libpq keyword/value connection string:
// whitespace-separated key = value pairs where a value may be single-quoted
// and backslash escapes a quote or backslash.
func parseKeywordValue(s string) (map[string]string, error) {
	settings := map[string]string{}
	s = strings.TrimSpace(s)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, fmt.Errorf("pgtest: invalid keyword/value DSN: missing %q after %q", "=", s)
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n\r\v\f") {
			return nil, fmt.Errorf("pgtest: invalid keyword/value DSN near %q", s)
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\v\f")

		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for i := 0; i < len(s); i++ {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s):
					i++
					val.WriteByte(s[i])
				case c == '\'':
					s, closed = s[i+1:], true
				default:
					val.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, fmt.Errorf("pgtest: invalid keyword/value DSN: unterminated quoted value for %q", key)
			}
		} else {
			i := 0
			for ; i < len(s) && !strings.ContainsRune(" \t\n\r\v\f", rune(s[i])); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[i:]
		}
		settings[key] = val.String()
		s = strings.TrimLeft(s, " \t\n\r\v\f")
	}
	return settings, nil
}
