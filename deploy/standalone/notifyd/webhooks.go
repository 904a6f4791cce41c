package notifyd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// devWebhookKeyFile holds the development secrets key of the webhook
// dispatcher, so that secrets stored by one run decrypt in the next.
const devWebhookKeyFile = "webhook-secrets.key"

// devWebhookKey reads the development key from dataDir, creating it on the
// first run.
func devWebhookKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, devWebhookKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dataDir, err)
	}
	spec := webhookdispatcher.NewSecretKeySpec("dev1")
	if err := os.WriteFile(path, []byte(spec+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return spec, nil
}
