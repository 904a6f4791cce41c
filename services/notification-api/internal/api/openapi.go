package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v5"
)

// OpenAPI is the OpenAPI 3.1 document of the notification routes.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(c *echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", OpenAPI)
}
