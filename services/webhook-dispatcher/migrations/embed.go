// Package migrations holds the numbered SQL migrations of webhook-dispatcher.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
