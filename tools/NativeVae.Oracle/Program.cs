using NativeVae;
using NativeVae.Core;
using NativeVae.Oracle;
using NativeVae.Oracle.AutoencoderKl;
using NativeVae.Oracle.Ops;
using NativeVae.Oracle.Taef2;
using NativeVae.Oracle.QwenImage;
using NativeVae.Oracle.Wan;
using NativeVae.Oracle.Tiling;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;

// The libtorch oracle: regenerates the committed fixtures under tests/fixtures. See README.md beside this file.
//
//   NativeVae.Oracle [--out DIR] [--shared DIR] [models] [ops] [taef2]      (no group named: all of them)

const string Usage = "usage: NativeVae.Oracle [--out DIR] [--shared DIR] [models] [ops] [taef2]";
string? outDir = null;
string? sharedDir = null;
var groups = new HashSet<string>(StringComparer.Ordinal);
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
    else if (args[i] == "--shared" && i + 1 < args.Length) sharedDir = args[++i];
    else if (args[i] is "models" or "ops" or "taef2") groups.Add(args[i]);
    else
    {
        Console.Error.WriteLine($"unknown argument '{args[i]}'\n{Usage}");
        return 2;
    }
}
if (groups.Count == 0) groups.UnionWith(["models", "ops", "taef2"]);
outDir ??= Path.Combine(FindRepoRoot(), "tests", "fixtures");
// The real TAEF2 weights and the test images sit beside the repository, never inside it.
sharedDir ??= Path.Combine(FindRepoRoot(), "..", "shared");

Torch.ConfigureDeterministic();
const ulong Seed = SeededWeights.DefaultSeed;
var builders = new List<Func<IEnumerable<FixtureFile>>>();
if (groups.Contains("ops"))
{
    builders.Add(() => Conv2dFixtures.Build(Seed));
    builders.Add(() => GroupNormFixtures.Build(Seed));
    builders.Add(() => AttentionFixtures.Build(Seed));
    builders.Add(() => ElementwiseFixtures.Build(Seed));
    builders.Add(() => RmsNormFixtures.Build(Seed));
    builders.Add(() => QwenAttentionFixtures.Build(Seed));
    builders.Add(() => PixelShuffleFixtures.Build(Seed));
}
// The blend tiling is checked on models it must leave unchanged before any blend fixture is written.
if (groups.Contains("models") || groups.Contains("taef2")) BlendTilingSelfCheck.Run(Seed);
if (groups.Contains("models"))
{
    builders.Add(() => AutoencoderKlFixtures.Build(Seed));
    builders.Add(() => Flux2Fixtures.Build(Seed));
    builders.Add(() => QwenImageFixtures.Build(Seed));
    builders.Add(() => WanVideoFixtures.Build(Seed));
    builders.Add(() => AutoencoderKlBlendFixtures.Build(Seed));
}
if (groups.Contains("taef2")) builders.Add(() => [Taef2Fixtures.Build(sharedDir), Taef2BlendFixtures.Build(sharedDir)]);

long total = 0;
int count = 0;
foreach (var build in builders)
{
    foreach (var file in build())
    {
        long bytes = file.Write(outDir);
        total += bytes;
        count++;
        Console.WriteLine($"{bytes,10:N0}  {file.RelativePath}");
    }
}
Console.WriteLine($"{total,10:N0}  bytes in {count} files under {Path.GetFullPath(outDir)}");
return 0;

static string FindRepoRoot()
{
    foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NativeVae.sln"))) return dir.FullName;
        }
    }
    throw new InvalidOperationException("no NativeVae.sln above the current directory; pass --out DIR");
}
