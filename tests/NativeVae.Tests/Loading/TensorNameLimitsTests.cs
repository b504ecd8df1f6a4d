using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

/// <summary>Layer indices in tensor names past 32 bits are refused by rule, never as int.Parse's OverflowException.</summary>
public class TensorNameLimitsTests
{
    [TestCase("encoder.down.99999999999.block.0.norm1.weight")]
    [TestCase("decoder.up.0.block.99999999999.conv1.weight")]
    [TestCase("encoder.down.99999999999.downsample.conv.weight")]
    public void AHugeLdmIndexIsNotAParameterOfAnyLayout(string name)
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(path, [(name, new TensorShape(1), [0f])]);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain($"tensor '{name}' is not an AutoencoderKL parameter in any known layout"));
    }

    [Test]
    public void AHugeTaesdIndexIsNotABareSequentialName()
    {
        string path = Path.Combine(TempFolder(), "taesd_decoder.safetensors");
        WriteSafeTensors(path, [("99999999999.conv.0.weight", new TensorShape(1), [0f])]);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Not.Contain("too large or too small"));
    }

    [Test]
    public void AConvWeightOfTheWrongRankIsNamedWhenTheConfigIsInferred()
    {
        // no config: the structure is read from conv shapes, which must be 4-d before they are indexed
        const string Conv = "encoder.down_blocks.0.resnets.0.conv1.weight";
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Diffusers).Select(t => t.Name == Conv ? (t.Name, new TensorShape(), new[] { 0f }) : t));
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain($"tensor '{Conv}' has shape [], not a 4-d conv weight"));
    }
}
