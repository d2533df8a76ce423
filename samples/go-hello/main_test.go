package main

import (
	"net/http/httptest"
	"os"
	"testing"
)

func TestGreeting(t *testing.T) {
	os.Setenv("LXDCTL_RELEASE", "v9")
	if got := greeting(); got != "go-hello release v9\n" {
		t.Fatalf("greeting() = %q", got)
	}
}

func TestHealth(t *testing.T) {
	rec := httptest.NewRecorder()
	handler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 200 {
		t.Fatalf("/health = %d", rec.Code)
	}
}
