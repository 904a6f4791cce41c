package notificationapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

// A service binary is always production: it refuses the public development
// secret before connecting to anything.
func TestTheBinaryRefusesTheDevelopmentJWTSecret(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("JWT_SECRET", auth.DevSecret)
	err := notificationapi.Main(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "public development secret") || !strings.Contains(err.Error(), "openssl rand -base64 48") {
		t.Fatalf("Main = %v, want the development secret refused", err)
	}
}
