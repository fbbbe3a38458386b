package app

import (
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/store"
)

// storeOf returns the statements of cfg's database layout: the binary runs
// River in usersync's internal schema.
func storeOf(cfg *config.Config) *store.Store {
	return store.New(store.Schemas{Internal: cfg.InternalSchema, River: cfg.InternalSchema})
}
