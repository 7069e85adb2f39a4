package auth

import "context"

// Principal is who a request acts as.
type Principal struct {
	kind principalKind
	key  *Key
}

type principalKind uint8

const (
	nobody     principalKind = iota
	local                    // no credential, on a server with neither token nor keys
	adminToken               // the server's --token-file token
	apiKey
)

// Local is a request to a server that has neither an admin token nor
// keys: a person on their own machine, with every right.
func Local() Principal { return Principal{kind: local} }

// AdminToken is a request that carried the server's admin token, the
// bootstrap credential: every right.
func AdminToken() Principal { return Principal{kind: adminToken} }

// KeyPrincipal is a request that carried a valid API key.
func KeyPrincipal(k *Key) Principal { return Principal{kind: apiKey, key: k} }

// Allows reports whether the principal may do what n needs. The zero
// Principal (no credential checked) may only reach public routes.
func (p Principal) Allows(n Need) bool {
	switch p.kind {
	case local, adminToken:
		return true
	case apiKey:
		return p.key.Allows(n)
	}
	return n.Right == Public
}

// Who names the principal for the audit log: "local", "admin token" or
// "key ID (NAME)".
func (p Principal) Who() string {
	switch p.kind {
	case local:
		return "local"
	case adminToken:
		return "admin token"
	case apiKey:
		if p.key.Name == "" {
			return "key " + p.key.ID
		}
		return "key " + p.key.ID + " (" + p.key.Name + ")"
	}
	return "nobody"
}

// Key returns the API key the principal holds, or nil.
func (p Principal) Key() *Key { return p.key }

type principalCtxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalCtxKey{}, p)
}

// FromContext returns the principal ctx carries (the zero Principal,
// allowed nothing but public routes, if none).
func FromContext(ctx context.Context) Principal {
	p, _ := ctx.Value(principalCtxKey{}).(Principal)
	return p
}
