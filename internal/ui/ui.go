// Package ui is Mote's dashboard: a page and its script and styles,
// embedded in the binary (no CDN, no build step), that `mote serve`
// serves at /ui. The page holds no data of its own: everything it shows
// it reads from the HTTP API with the caller's credential, so it sees
// exactly what the key it is given may see.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui"

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the dashboard's files under Prefix: /ui and /ui/ give
// the page.
func Handler() http.Handler {
	files, _ := fs.Sub(assets, "assets")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, Prefix), "/")
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(files, path.Clean(name))
		ctype := types[path.Ext(name)]
		if err != nil || ctype == "" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page loads nothing from elsewhere and may not be framed
		// (a frame could trick a user into clicking redrive or deploy).
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		w.Write(b)
	})
}
