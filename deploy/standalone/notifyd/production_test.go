package notifyd_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/xpeditis/notify/deploy/standalone/notifyd"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// In production mode notifyd refuses the public development secret (with
// which anyone can mint tokens) and weak secrets, before it opens anything,
// saying why and how to make a good one. Development mode still takes the
// development secret as its default.
func TestProductionModeRefusesTheDevelopmentAndWeakJWTSecrets(t *testing.T) {
	for name, tc := range map[string]struct{ secret, why string }{
		"development secret": {auth.DevSecret, "public development secret"},
		"short":              {"0123456789abcdef", "at least 32 bytes"},
		"one character":      {strings.Repeat("x", 40), "pattern repeated"},
		"low entropy":        {strings.Repeat("x", 40) + "yz", "too little entropy"},
	} {
		env := config.FromMap(map[string]string{
			"NOTIFY_MODE": "production", "JWT_SECRET": tc.secret, "DATA_DIR": t.TempDir(),
			"DATABASE_URL": "postgres://127.0.0.1:1/none", "WEBHOOK_SECRETS_KEYS": webhookdispatcher.NewSecretKeySpec("k1"),
		})
		err := notifyd.Run(context.Background(), env, io.Discard, notifyd.RunOptions{})
		if err == nil || !strings.Contains(err.Error(), "configuration") || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "openssl rand -base64 48") {
			t.Errorf("%s: Run = %v, want a configuration error naming %q and how to make a secret", name, err, tc.why)
		}
	}
}
