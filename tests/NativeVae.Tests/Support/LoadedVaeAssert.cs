using NativeVae.Models.AutoencoderKl;
using NativeVae.Formats;
using NativeVae.Loading;

namespace NativeVae.Tests.Support;

/// <summary>Two loads of one checkpoint in different layouts are the same model.</summary>
internal static class LoadedVaeAssert
{
    /// <summary>Same family, config, parameter list (names, shapes, order) and bit-identical values.</summary>
    public static void Same(LoadedVae actual, LoadedVae expected)
    {
        Assert.That(actual.Family, Is.EqualTo(expected.Family));
        if (expected.KlConfig is not null)
            Assert.That(AutoencoderKlConfigJson.Serialize(actual.KlConfig!), Is.EqualTo(AutoencoderKlConfigJson.Serialize(expected.KlConfig)));
        else
            Assert.That(actual.TinyConfig, Is.EqualTo(expected.TinyConfig));
        Assert.That(actual.Parameters, Is.EqualTo(expected.Parameters));
        foreach (var (name, _) in expected.Parameters)
            Assert.That(actual.Weights.ReadFloat32(name), Is.EqualTo(expected.Weights.ReadFloat32(name)), name);
    }
}
