package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"
)

// nginxDavExt is Debian's build of the dav-ext module (package
// libnginx-mod-http-dav-ext): PROPFIND and OPTIONS, which nginx's own dav
// module lacks.
const nginxDavExt = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"

// nginxConf is the whole nginx config: nothing comes from /etc/nginx. /dav/
// is the WebDAV share with basic auth, as a user would set it up from the
// dav and dav-ext modules' documentation: no ETags in PROPFIND replies, no
// PROPPATCH, no LOCK, collections only with a trailing slash. The access
// log has Apache's format (status, bytes sent, bytes received), so that
// Requests reads both alike.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`
daemon off;
worker_processes 1;
pid "{{.Base}}/run/nginx.pid";
error_log "{{.Base}}/error.log" warn;
load_module "{{.DavExt}}";
{{if .RunUser}}user {{.RunUser}} {{.RunGroup}};
{{end}}
events { worker_connections 256; }
http {
  log_format cloudmount '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $request_length';
  access_log "{{.Base}}/access.log" cloudmount;
  client_body_temp_path "{{.Base}}/tmp/body";
  proxy_temp_path "{{.Base}}/tmp/proxy";
  fastcgi_temp_path "{{.Base}}/tmp/fastcgi";
  uwsgi_temp_path "{{.Base}}/tmp/uwsgi";
  scgi_temp_path "{{.Base}}/tmp/scgi";
  # A body of any size (the default is 1 MiB).
  client_max_body_size 0;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:{{.Port}};
    server_name 127.0.0.1;
    location /dav/ {
      alias "{{.Data}}/";
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw group:r all:r;
      create_full_put_path on;
      {{.Extra}}
      auth_basic "cloudmount test";
      auth_basic_user_file "{{.Base}}/htpasswd";
    }
  }
}
`))

// startNginx starts nginx with the dav and dav-ext modules from its own
// config in a temp directory, as its own foreground process, and stops it
// in t.Cleanup.
func startNginx(t *testing.T) *Server {
	t.Helper()
	return startNginxWith(t, "")
}

// startNginxWith is startNginx with extra directives in the WebDAV
// location (a client_max_body_size, say).
func startNginxWith(t *testing.T, extra string) *Server {
	t.Helper()
	nginx := needTool(t, "nginx")
	if _, err := os.Stat(nginxDavExt); err != nil {
		need(t, "nginx's dav-ext module (Debian: libnginx-mod-http-dav-ext): %v", err)
	}
	s := newServerBase(t, "nginx")
	base := filepath.Dir(s.Dir)
	for _, d := range []string{"run", "tmp"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runUser, runGroup := "", ""
	if os.Geteuid() == 0 {
		// nginx's workers drop root; make them www-data, who owns the data.
		runUser, runGroup = "www-data", "www-data"
		s.runAs(t, runUser)
		if err := os.Chown(filepath.Join(base, "tmp"), s.uid, s.gid); err != nil {
			t.Fatal(err)
		}
	}
	s.writeHtpasswd(t, filepath.Join(base, "htpasswd"))
	s.AccessLog = filepath.Join(base, "access.log")
	s.ErrorLog = filepath.Join(base, "error.log")

	conf := filepath.Join(base, "nginx.conf")
	return s.startConfigured(t, "nginx", "nginx", conf, nginxConf, func(port int) map[string]any {
		return map[string]any{"Base": base, "Data": s.Dir, "Port": port, "DavExt": nginxDavExt,
			"RunUser": runUser, "RunGroup": runGroup, "Extra": extra}
	}, func() *exec.Cmd {
		// -p: relative paths and the start-up error log stay in base.
		return exec.Command(nginx, "-p", base, "-c", conf, "-e", s.ErrorLog)
	})
}
