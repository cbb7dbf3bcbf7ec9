package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/sentimentpro/sentiment"

// TestBinariesLinkOnlyWhatTheyUse: the registry speaks net/http, the CLI
// does not route, and the edge does not train.
func TestBinariesLinkOnlyWhatTheyUse(t *testing.T) {
	forbidden := map[string][]string{
		"./cmd/registry": {"github.com/valyala/fasthttp"},
		"./cmd/sentctl": {module + "/geo", "github.com/valyala/fasthttp", "github.com/sony/gobreaker",
			"github.com/oschwald/maxminddb-golang"},
		"./cmd/edge": {module + "/model/train"},
	}
	for cmd, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "../../"+strings.TrimPrefix(cmd, "./")).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", cmd, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				// A third-party module is refused whole; this module's
				// packages one by one (geo/regions, the region list, is
				// not the router).
				if dep == b || !strings.HasPrefix(b, module) && strings.HasPrefix(dep, b+"/") {
					t.Errorf("%s links %s", cmd, dep)
				}
			}
		}
	}
}

// TestNoReexportedWireNames: no package outside registry/wire names a wire
// document or error again (type X = wire.X, var ErrX = wire.ErrX): one
// definition, one name, whoever reads the code.
func TestNoReexportedWireNames(t *testing.T) {
	root := "../.."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "wire" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gen.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Assign.IsValid() && fromWire(s.Type) {
						t.Errorf("%s: type %s = %s re-exports a wire document", path, s.Name.Name, exprString(s.Type))
					}
				case *ast.ValueSpec:
					for i, v := range s.Values {
						if fromWire(v) {
							t.Errorf("%s: %s = %s re-exports a wire name", path, s.Names[i].Name, exprString(v))
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fromWire reports whether e is a bare wire.X or regclient.X name.
func fromWire(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "wire" || pkg.Name == "regclient")
}

func exprString(e ast.Expr) string {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		if id, ok := sel.X.(*ast.Ident); ok {
			return id.Name + "." + sel.Sel.Name
		}
	}
	return "?"
}
