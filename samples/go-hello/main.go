// go-hello: the lxdctl sample app (net/http only).
// GET / names the app and its release (LXDCTL_RELEASE); /health is 200; /db and /redis say
// whether DATABASE_URL / REDIS_URL are set and whether their host:port accepts a TCP connection.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

const app = "go-hello"

func greeting() string {
	release := os.Getenv("LXDCTL_RELEASE")
	if release == "" {
		release = "dev"
	}
	return fmt.Sprintf("%s release %s\n", app, release)
}

func tcpCheck(raw string, defaultPort string) map[string]interface{} {
	result := map[string]interface{}{"set": raw != "", "reachable": false}
	if raw == "" {
		return result
	}
	u, err := url.Parse(raw)
	if err != nil {
		result["error"] = "bad url"
		return result
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	result["host"], result["port"] = u.Hostname(), port
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), 2*time.Second)
	if err != nil {
		result["error"] = err.Error()
		return result
	}
	conn.Close()
	result["reachable"] = true
	return result
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, greeting())
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok\n") })
	mux.HandleFunc("/db", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(tcpCheck(os.Getenv("DATABASE_URL"), "5432"))
	})
	mux.HandleFunc("/redis", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(tcpCheck(os.Getenv("REDIS_URL"), "6379"))
	})
	return mux
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	log.Printf("%s listening on :%s", greeting()[:len(greeting())-1], port)
	log.Fatal(http.ListenAndServe("0.0.0.0:"+port, handler()))
}
