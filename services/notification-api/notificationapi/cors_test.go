package notificationapi_test

import (
	"net/http"
	"testing"

	"github.com/xpeditis/notify/pkg/testkit"
)

// API_ALLOWED_ORIGINS lets the listed page's browser call the API and
// leaves another page's browser without the headers it needs.
func TestAPageOfAnAllowedOriginMayCallTheAPIAndAnotherMayNot(t *testing.T) {
	h := startWith(t, testkit.StartNATS(t), testkit.Database(t), testkit.Logger(), map[string]string{"API_ALLOWED_ORIGINS": "https://app.example"})
	tok := token(t, "cors-user")
	ask := func(method, origin string, headers map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, h.base+"/api/v1/notifications/read-all", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	preflight := map[string]string{"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization"}
	resp := ask(http.MethodOptions, "https://app.example", preflight)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight from the allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	resp = ask(http.MethodPatch, "https://app.example", map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("PATCH from the allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	resp = ask(http.MethodOptions, "https://evil.example", preflight)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight from another origin: Access-Control-Allow-Origin %q", got)
	}
}
