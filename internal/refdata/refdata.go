// Package refdata finds the providers' own published material (their OpenAPI
// documents and the payloads they wrote: SDK fixtures, documentation
// examples, e2e snapshots) that some tests check usersync against. That
// material is not ours to commit, so it is not in this repository: tests
// read it where it is kept and skip, saying why, where it is absent.
package refdata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar names the folder explicitly. When it is unset, Dir looks for
// DefaultRel in the working directory and each of its parents (the layout
// of the project's workspace and CI, where the folder sits beside the
// checkout).
const EnvVar = "USERSYNC_REFERENCE_DIR"

// DefaultRel is where the material is looked for when EnvVar is unset.
var DefaultRel = filepath.Join("shared", "reference")

// Dir returns the folder of the providers' published material, or an error
// saying where it looked.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a folder", EnvVar, d)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		p := filepath.Join(d, DefaultRel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("the providers' published documents and payloads are not here (set " + EnvVar +
				" or keep them in " + DefaultRel + " beside the checkout)")
		}
		d = up
	}
}
