using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

/// <summary>A NaN or infinite weight is refused when read, naming the file, the stored tensor, the count and the first.</summary>
public class WeightValuesTests
{
    [Test]
    public void NonFiniteWeightsAreRefusedNamingTheTensor()
    {
        const string Poisoned = "decoder.conv_out.weight";
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        var tensors = InLayout(SmallSd, Layout.Diffusers);
        var values = tensors.Single(t => t.Name == Poisoned).Values;
        values[2] = float.NaN;
        values[3] = float.NegativeInfinity;
        WriteSafeTensors(path, tensors);
        using var vae = VaeLoader.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => vae.Weights.ReadFloat32(Poisoned));
        Assert.That(e!.Message, Is.EqualTo($"{path}: tensor '{Poisoned}' has 2 NaN or infinite values (the first at flat index 2, NaN)"));
        Assert.That(vae.Weights.ReadFloat32("decoder.conv_out.bias"), Has.All.Matches<float>(float.IsFinite));
    }
}
