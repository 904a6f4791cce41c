module github.com/xpeditis/notify/scripts/chaos

go 1.26.0

require github.com/xpeditis/notify/pkg v0.0.0

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/jmoiron/sqlx v1.4.0 // indirect
	github.com/lib/pq v1.12.3 // indirect
)

replace github.com/xpeditis/notify/pkg => ../../pkg
