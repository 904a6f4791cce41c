package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the webhook API, served at
// /api/v1/webhooks/openapi.json and checked against real responses by the
// service's tests.
//
//go:embed openapi.json
var OpenAPI []byte
