using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Models;

public class AutoencoderKlParametersTests
{
    [Test]
    public void SdConfigMatchesPublishedKeyList()
    {
        string tsv = TestPaths.RequireShared("reference/autoencoder_kl_keys.tsv");
        var expected = File.ReadAllLines(tsv).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split('\t'))
            .Select(f => (Name: f[0], Shape: f[2]))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        var actual = AutoencoderKlParameters.Enumerate(AutoencoderKlConfig.Sd)
            .Select(p => (p.Name, Shape: p.Shape.ToString()))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        Assert.That(actual, Is.EqualTo(expected));
    }

    [Test]
    public void SdAndFluxParameterCounts()
    {
        // Counts from ../shared/reference/README.md.
        var sd = AutoencoderKlParameters.Enumerate(AutoencoderKlConfig.Sd);
        Assert.That(sd, Has.Count.EqualTo(248));
        Assert.That(sd.Sum(p => p.Shape.ElementCount), Is.EqualTo(83_653_863L));
        var flux = AutoencoderKlParameters.Enumerate(AutoencoderKlConfig.Flux1);
        Assert.That(flux, Has.Count.EqualTo(244));
        Assert.That(flux.Sum(p => p.Shape.ElementCount), Is.EqualTo(83_819_683L));
    }
}
