// x509-verify: Go's crypto/x509 judges a mesh certificate the way Linkerd's control plane, Kubernetes and every Go
// service terminating TLS would. Standard library only, so the test suite builds it offline.
//
//	x509-verify <leaf.pem> <chain.pem> <anchors.pem> <dns-name>
//
// Prints one JSON object: what Go parsed from the leaf, and each verification (server and client auth). Exits 1 when
// a certificate does not parse or a verification fails, with the error in the JSON.
package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

type report struct {
	DNSNames     []string `json:"dnsNames"`
	URIs         []string `json:"uris"`
	CommonName   string   `json:"commonName"`
	NotBefore    string   `json:"notBefore"`
	NotAfter     string   `json:"notAfter"`
	Unhandled    []string `json:"unhandledCriticalExtensions"`
	ServerAuth   string   `json:"serverAuth"`
	ClientAuth   string   `json:"clientAuth"`
	ChainLengths []int    `json:"chainLengths"`
	Error        string   `json:"error,omitempty"`
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certificates []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		certificate, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certificates)+1, err)
		}
		certificates = append(certificates, certificate)
	}
	if len(certificates) == 0 {
		return nil, errors.New(path + ": no CERTIFICATE block")
	}
	return certificates, nil
}

func outcome(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func run(args []string) (report, error) {
	var out report
	if len(args) != 4 {
		return out, errors.New("usage: x509-verify <leaf.pem> <chain.pem> <anchors.pem> <dns-name>")
	}
	leaves, err := readCertificates(args[0])
	if err != nil {
		return out, err
	}
	chain, err := readCertificates(args[1])
	if err != nil {
		return out, err
	}
	anchors, err := readCertificates(args[2])
	if err != nil {
		return out, err
	}
	leaf := leaves[0]
	out.DNSNames = leaf.DNSNames
	for _, uri := range leaf.URIs {
		out.URIs = append(out.URIs, uri.String())
	}
	out.CommonName = leaf.Subject.CommonName
	out.NotBefore = leaf.NotBefore.UTC().Format(time.RFC3339)
	out.NotAfter = leaf.NotAfter.UTC().Format(time.RFC3339)
	for _, oid := range leaf.UnhandledCriticalExtensions {
		out.Unhandled = append(out.Unhandled, oid.String())
	}
	roots := x509.NewCertPool()
	for _, anchor := range anchors {
		roots.AddCert(anchor)
	}
	intermediates := x509.NewCertPool()
	for _, certificate := range append(leaves[1:], chain...) {
		intermediates.AddCert(certificate)
	}
	// KeyUsages accepts a chain valid for any one listed usage, so each usage the mesh needs is verified on its own.
	verify := func(usage x509.ExtKeyUsage) error {
		chains, err := leaf.Verify(x509.VerifyOptions{
			DNSName: args[3], Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{usage},
		})
		for _, found := range chains {
			out.ChainLengths = append(out.ChainLengths, len(found))
		}
		return err
	}
	serverErr := verify(x509.ExtKeyUsageServerAuth)
	clientErr := verify(x509.ExtKeyUsageClientAuth)
	out.ServerAuth, out.ClientAuth = outcome(serverErr), outcome(clientErr)
	if serverErr != nil || clientErr != nil {
		return out, fmt.Errorf("server auth: %s; client auth: %s", out.ServerAuth, out.ClientAuth)
	}
	return out, nil
}

func main() {
	out, err := run(os.Args[1:])
	if err != nil {
		out.Error = err.Error()
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
	if err != nil {
		os.Exit(1)
	}
}
