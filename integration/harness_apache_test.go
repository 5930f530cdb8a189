package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
)

// apacheModDir is where Debian keeps Apache's modules.
const apacheModDir = "/usr/lib/apache2/modules"

// apacheModules are the modules the harness config loads (module name, file).
var apacheModules = [][2]string{
	{"mpm_event_module", "mod_mpm_event.so"},
	{"authn_core_module", "mod_authn_core.so"},
	{"authn_file_module", "mod_authn_file.so"},
	{"authz_core_module", "mod_authz_core.so"},
	{"authz_user_module", "mod_authz_user.so"},
	{"auth_basic_module", "mod_auth_basic.so"},
	{"alias_module", "mod_alias.so"},
	{"dav_module", "mod_dav.so"},
	{"dav_fs_module", "mod_dav_fs.so"},
}

// apacheConf is the whole httpd config: nothing comes from /etc/apache2.
// /dav/ is the WebDAV share with basic auth; /plain/ is a directory that
// Apache serves without DAV, for the "not a WebDAV collection" case.
var apacheConf = template.Must(template.New("httpd.conf").Parse(`
ServerRoot "{{.Base}}"
ServerName 127.0.0.1
Listen 127.0.0.1:{{.Port}}
PidFile "{{.Base}}/run/httpd.pid"
DefaultRuntimeDir "{{.Base}}/run"
ErrorLog "{{.Base}}/error.log"
LogLevel warn
{{range .Modules}}LoadModule {{index . 0}} "{{$.ModDir}}/{{index . 1}}"
{{end}}
{{if .RunUser}}User {{.RunUser}}
Group {{.RunGroup}}
{{end}}
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
Timeout 300
{{if .LogioFile}}LoadModule logio_module "{{.ModDir}}/{{.LogioFile}}"
{{end}}LogFormat "%h %u %t \"%r\" %>s %b{{if .Logio}} %I{{end}}" cloudmount
CustomLog "{{.Base}}/access.log" cloudmount
DavLockDB "{{.Base}}/lock/DavLock"
# A body of any size: the default limit (1 GiB) would refuse the big-file test.
LimitRequestBody 0
DocumentRoot "{{.Base}}/docroot"
<Directory "{{.Base}}/docroot">
  Options None
  AllowOverride None
  Require all granted
</Directory>
Alias /plain "{{.Base}}/plain"
<Directory "{{.Base}}/plain">
  Options None
  AllowOverride None
  Require all granted
</Directory>
Alias /dav "{{.Data}}"
<Directory "{{.Data}}">
  Dav On
  Options None
  AllowOverride None
  AuthType Basic
  AuthName "cloudmount test"
  AuthUserFile "{{.Base}}/htpasswd"
  Require valid-user
</Directory>
{{.Extra}}
`))

// apacheExtra is what a variant of the harness's Apache adds to it: modules
// to load and configuration after the rest (virtual hosts, say).
type apacheExtra struct {
	// Modules are loaded after apacheModules (module name, file).
	Modules [][2]string
	// Conf returns the configuration to append; it is called again for
	// each attempt to start, so that it can pick fresh ports.
	Conf func() string
}

// startApache starts Apache httpd with mod_dav from its own config in a temp
// directory, as its own foreground process, and stops it in t.Cleanup.
func startApache(t *testing.T) *Server {
	t.Helper()
	return startApacheWith(t, apacheExtra{})
}

// startApacheWith is startApache with extra modules and configuration.
func startApacheWith(t *testing.T, extra apacheExtra) *Server {
	t.Helper()
	apache := needTool(t, "apache2")
	modules := append(slices.Clone(apacheModules), extra.Modules...)
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join(apacheModDir, m[1])); err != nil {
			need(t, "Apache module %s: %v", m[1], err)
		}
	}
	s := newServerBase(t, "apache")
	s.DeadProps = true
	base := filepath.Dir(s.Dir)
	for _, d := range []string{"run", "lock", "docroot", "plain"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "plain", "index.html"), []byte("<p>not WebDAV</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runUser, runGroup := "", ""
	if os.Geteuid() == 0 {
		// Apache refuses to serve as root; its workers run as www-data.
		runUser, runGroup = "www-data", "www-data"
		s.runAs(t, runUser)
		if err := os.Chown(filepath.Join(base, "lock"), s.uid, s.gid); err != nil {
			t.Fatal(err)
		}
	}
	// %I (bytes received) needs mod_logio: compiled in on Debian, a module
	// elsewhere, or absent (then the log has no %I).
	logio, logioFile := false, ""
	if out, err := exec.Command(apache, "-l").Output(); err == nil && strings.Contains(string(out), "mod_logio.c") {
		logio = true
	} else if _, err := os.Stat(filepath.Join(apacheModDir, "mod_logio.so")); err == nil {
		logio, logioFile = true, "mod_logio.so"
	}
	s.writeHtpasswd(t, filepath.Join(base, "htpasswd"))
	s.AccessLog = filepath.Join(base, "access.log")
	s.ErrorLog = filepath.Join(base, "error.log")

	conf := filepath.Join(base, "httpd.conf")
	return s.startConfigured(t, "Apache httpd", "apache2", conf, apacheConf, func(port int) map[string]any {
		more := ""
		if extra.Conf != nil {
			more = extra.Conf() // new ports at each attempt
		}
		return map[string]any{"Base": base, "Data": s.Dir, "Port": port, "ModDir": apacheModDir,
			"Modules": modules, "RunUser": runUser, "RunGroup": runGroup,
			"Logio": logio, "LogioFile": logioFile, "Extra": more}
	}, func() *exec.Cmd {
		// Not /etc/apache2/envvars: the config above names everything.
		return exec.Command(apache, "-f", conf, "-DFOREGROUND")
	})
}
