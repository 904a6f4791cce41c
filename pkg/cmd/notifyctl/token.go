package main

import (
	"fmt"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
)

func runToken(args []string, io stdio) error {
	c := newCommand("token", "Mints an HS256 JWT that notifyd and the services accept, and prints it.",
		`TOKEN=$(notifyctl token -user user-7 -org org-42 -role ADMIN)`,
		`curl -H "Authorization: Bearer $(notifyctl token -user user-7 -org org-42)" http://127.0.0.1:8080/api/v1/notifications`,
		`JWT_SECRET=... notifyctl token -user alice -org org-1 -role USER -ttl 1h -issuer xpeditis`)
	user := c.fs.String("user", "user-1", "user id (the sub claim)")
	org := c.fs.String("org", "org-1", "organization id (the organizationId claim)")
	role := c.fs.String("role", "ADMIN", "role (ADMIN, MANAGER, USER, …)")
	ttl := c.fs.Duration("ttl", 12*time.Hour, "lifetime of the token")
	var secret, issuer, audience string
	c.secretFlag(&secret)
	c.fromEnv(&issuer, "issuer", "JWT_ISSUER", "", "none", "iss claim")
	c.fromEnv(&audience, "audience", "JWT_AUDIENCE", "", "none", "aud claim")
	if err := c.parse(args, io); err != nil {
		return err
	}
	tok, err := auth.Mint(secret, auth.MintOptions{UserID: *user, OrganizationID: *org, Role: *role, TTL: *ttl, Issuer: issuer, Audience: audience})
	if err != nil {
		return err
	}
	fmt.Fprintln(io.out, tok)
	return nil
}

// secretFlag is -secret, the JWT secret, the same in every command that
// mints tokens.
func (c *command) secretFlag(p *string) {
	c.fromEnv(p, "secret", "JWT_SECRET", auth.DevSecret, "notifyd's public development secret", "HS256 secret the server accepts")
}
